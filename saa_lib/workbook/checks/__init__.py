"""The checkers of the series' exercises, one module per notebook (``nbNN``), registered with
:func:`saa_lib.workbook.exercises.exercise`; :func:`saa_lib.workbook.exercises.check` imports them all."""
