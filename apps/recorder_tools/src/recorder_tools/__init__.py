"""recorder_tools: offline tools on recorded sessions (report, Parquet export, completeness check).

They only read: every database is opened through ``recorder_tools.database``.
"""
