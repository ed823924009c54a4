"""Pull-request mining shared by the ``mine_prs`` and ``pr_queries`` stages: records, sources, filters, queries."""
