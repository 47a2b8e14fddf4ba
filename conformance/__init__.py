"""`make conformance`: the Autobahn|Testsuite fuzzing client against a WebSocket server run by
gunicorn's gevent worker, and a table of its verdicts."""
