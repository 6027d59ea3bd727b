"""distill: a Snakemake data build system that distils a hosted assistant into a small local model."""
