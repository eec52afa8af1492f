"""Self-supervised methods as tasks for the one trainer: their losses (losses.py) and each
method's task and model (simclr.py; MoCo v2, BYOL and SwAV follow the same plan)."""
