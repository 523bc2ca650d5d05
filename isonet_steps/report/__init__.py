"""The HTML report (data, sections, tables, figures, page) and ``isonet check``'s report on the
installation; the matplotlib setup and the FSC figure are :mod:`isonet_steps.figures`'s.
"""
