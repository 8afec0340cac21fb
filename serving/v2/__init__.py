"""The Open Inference Protocol (V2): tensors, model signatures and inference, apart from HTTP.

routes/v2.py translates HTTP to and from these modules; they never import FastAPI.
"""
