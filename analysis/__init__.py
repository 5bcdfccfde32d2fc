"""Analysis of found rules: families (PowerSign, AddSign, ...), family trees, LaTeX tables, plots, reports.

    sources   run directory or rules file -> plain RuleRow / SampleRow data
    named     the named families, matched on a rule's canonical SymPy form
    clusters  skeletons and tree edit distance for the rules outside the named families
    families  every rule in exactly one family; the JSON view for `nos families`
    tree      the family tree (networkx) as text, PNG and DOT
    tables    best rules per family as LaTeX and Markdown
    plots     best reward, reward distribution and family share over a run's samples
    report    what the CLI calls: run_families, run_report / write_report

Importing a module here does not import matplotlib or networkx; the functions that draw do.
"""
