"""The admin library: everything the CLI does, as plain calls (sqlite-utils' model).

``sync`` plans and applies repairs, ``views`` lists and shows runs, ``archive`` moves old runs
out, ``ops`` holds ``check``, ``report`` and ``usage``, ``schema_check``/``schema_pin`` compare
and pin the base's schema.  Workers never import this package.
"""
