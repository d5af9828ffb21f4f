"""Reports of runs and comparisons: console, markdown, junit, html, json."""
