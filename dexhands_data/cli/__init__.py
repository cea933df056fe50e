"""The ``dexdata`` command: one thin module per subcommand (parse, call the library, report)."""
