"""Labelled photos, ``<root>/<person>/<photo>``: the folder scan (``folders``) and the end-to-end score.

Training reads its data and scores its models with these (``scores``: a photo's answer is
its largest face's label), and the batch command scores a labelled folder with the same
rules; they live on the serving side, which training builds on.
"""
