"""Analysis of found rules: behavioural families, the family tree, LaTeX tables, plots, reports.

    sources    run directory or rules file -> plain RuleRow / SampleRow data
    signature  how a rule responds on probes (scale of g, v, sign(g) = sign(m), direction, decays,
               stochastic parts): its kind (PowerSign, AddSign, Adam-like, ...) and modifiers, in words
    behaviour  d = 1 - mean cosine of two rules' updates on the pre-screen's probes (the tree's leaves)
    anchors    the named optimizers (SGD, Adam, SignMomentum, PowerSign, ...), each a family's anchor
    families   trained rules in families (one kind) and sub-families (one signature), with ids; the JSON view
    tree       the family tree (networkx) as text, GraphML, DOT and a dendrogram PNG
    tables     Markdown tables and families.tex (booktabs)
    plots      best reward (several runs overlaid), reward distribution, family share
    document   a report's blocks rendered as Markdown and as one self-contained HTML file
    studies    confirmation and transfer tables
    report     what the CLI calls: run_families / write_report

Importing a module here does not import matplotlib or networkx; the functions that draw do.
"""
