"""The HTML report (data, sections, tables, figures, page), the figures' matplotlib setup, and
``isonet check``'s report on the installation.
"""
