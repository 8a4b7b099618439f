"""The ``commission-ledger`` command line: the top of the import graph.

It imports every package below it (schemas ← ledger ← projections ← consumers |
service ← devkit ← cli) and nothing imports it. Module map:

- ``main``        the table of commands and the parser; imports only the module of
                  the command that runs; ``main(argv) -> int``
- ``options``     shared options, and what commands resolve from them (store, rules, books)
- ``errors``      exit codes: errors turned into one line on stderr
- ``render``      output the command line alone prints (the explain text)
- ``progress``    rich progress bars on stderr, shown on a terminal only
- ``supervisor``  N child processes for ``consume --workers N`` and ``ingest --workers N``
- one module per command group: ``ingest``; ``books`` (settle, payout, adjust);
  ``reads`` (payouts, statement, explain, dead-letters, merchant-statement);
  ``audit``; ``migrate``; ``project``; ``kafka`` (consume, publish); ``relay``;
  ``serve``; ``demo``
"""
