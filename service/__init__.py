"""The finance, audit and promoter HTTP service (``commission-ledger serve``, SPEC §11, §13).

Modules, each importing only those listed after it:

- ``api``       the Litestar app (``create_app``, ``app_from_env``), the JSON routes, error responses
- ``pages``     the HTML pages (Jinja templates in ``templates/``) and the login form
- ``chart``     the balances-over-time chart of a promoter page, as points
- ``state``     ``Service``: what one server process shares (the store; reads use projections.readmodels)
- ``idempotency`` the ``Idempotency-Key`` records of writes
- ``metrics``   the service's Prometheus metrics
- ``auth``      tokens, the authentication middleware, role guards
- ``blocking``  running blocking handlers in worker threads
"""
