"""One library function per step: a STAR table in, MRC files and a STAR table out, no Click.

The step commands, ``isonet run`` and ``gold-standard`` call these functions.
"""
