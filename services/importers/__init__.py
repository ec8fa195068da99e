"""`triage import disqus|wordpress FILE`: comments from the tools sites already ran."""
