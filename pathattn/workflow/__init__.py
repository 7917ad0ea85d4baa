"""A study as a whole: the results layout every stage writes into, and the demo that runs the workflow.

Stage-neutral: nothing here imports a stage's package (or torch), so Snakemake can import it cheaply.
"""
