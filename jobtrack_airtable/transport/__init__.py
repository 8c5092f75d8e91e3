"""How a request goes out: the connection to a base, the retry policy, the server's clock and
the table layer that turns logical keys into Airtable fields and back.
"""
