"""The retrospective: registry.json, report extraction, summaries, troubleshooting, result skills.

Flow: `registry` picks the domain and paths; `collect` reads the reports into records;
`summarize` writes the Markdown summary; `propose` stages troubleshooting entries and result
skills; `apply --approved` moves one into place; `log` appends the dated entry.
"""
