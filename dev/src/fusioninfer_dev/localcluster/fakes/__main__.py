"""`python -m fusioninfer_dev.localcluster.fakes`: run the fake controllers as a process."""

from fusioninfer_dev.localcluster.fakes import main

main()
