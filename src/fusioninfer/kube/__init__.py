"""Small, pure helpers for Kubernetes objects, shared by every layer (api, builders, runtime,
controller, localcluster, bench).

Pure: nothing here does I/O or imports the rest of `fusioninfer`, so any module may depend on
it without creating an import cycle.
"""
