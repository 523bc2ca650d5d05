"""Files: MRC volumes, STAR tables, IsoNet's tomogram tables, IMOD models, refine's result folder.

The lowest layer: it imports nothing else of the package. Every write goes through ``atomic`` (a
temporary name, then a rename), and every bad input becomes one ``errors.InputError`` line.
"""
