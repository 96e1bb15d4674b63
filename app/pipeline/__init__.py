"""Pipeline stages shared by training and serving, so the two can never drift.

decode -> detect -> crop/align -> features -> classify. Each stage is its own module.
"""
