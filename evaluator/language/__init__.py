"""The policy language: conditions, the policy model, value sets, the fact dictionary, loading."""
