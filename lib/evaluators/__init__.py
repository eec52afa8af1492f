"""Evaluators shared by papers: class selectivity, adversarial attacks, representation
dimensionality (class_selectivity.md §2, §7); corruptions and linear probes come later."""
