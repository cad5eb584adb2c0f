"""Deliverables built from a brief's finals: the zip with its manifest, the contact sheet, the
animatic and the shot list. Pure: no Django; the service hands in what each scene's final is and
how to open its files, and a file to write into."""
