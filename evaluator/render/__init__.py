"""Render decisions and reviews: text, JSON, Markdown and the reviewer's notice."""
