"""FusionInfer's development harness (distribution `fusioninfer-dev`, in `dev/`): the local
control plane and its components (`localcluster`), the demo (`demo`, `demo_traffic`) and the
`fusioninfer cluster` / `fusioninfer demo` commands (`commands`). The operator (`fusioninfer`)
never imports it; its wheel and image do not contain it.
"""
