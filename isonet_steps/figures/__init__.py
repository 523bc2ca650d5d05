"""Figures drawn with matplotlib (Agg canvas, no pyplot): the plotting basics and the FSC figure."""
