"""Who may act: accounts, passwords, API tokens, companies and their members, staff."""
