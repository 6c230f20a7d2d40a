"""Widgets shared by the pages: the grid editor (:mod:`.grid`), the sliding-window
stepper (:mod:`.stepper`) and the display names of core things (:mod:`.labels`)."""
