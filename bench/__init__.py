"""LabShare benchmarks: a campaign-scale data generator and ``make bench``.

Not imported by the application and not run by the test suite.
"""
