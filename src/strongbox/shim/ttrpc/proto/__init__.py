"""The ttrpc envelope messages, as generated Python (see ``scripts/gen-proto.sh``).

    ttrpc_pb2              ttrpc         Request, Response, KeyValue
    google/rpc/status_pb2  google.rpc    Status (code, message, details)

The ``.proto`` files beside the modules are the source; the ``*_pb2.py`` and
``*_pb2.pyi`` files are generated and checked in. Only ``envelope.py`` uses them.
"""
