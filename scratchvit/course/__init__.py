"""The course on the textbook tier: the task table, the student copies, grading and the soundness check.

`scratchvit course export --module N --out DIR` writes a student repository, `scratchvit course grade
DIR` grades one, `scratchvit course check` proves the tasks sound (scratchvit/course/check.py). The
lecture notes are in notes/, the notebooks built from them and the demos in notebooks/.
"""
