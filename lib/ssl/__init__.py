"""Self-supervised methods as tasks for the one trainer: their losses (losses.py: NT-Xent,
InfoNCE, Sinkhorn-Knopp) and each method's task and model (simclr.py, moco.py, byol.py,
swav.py)."""
