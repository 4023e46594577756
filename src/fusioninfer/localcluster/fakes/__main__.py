"""`python -m fusioninfer.localcluster.fakes`: run the fake controllers as a process."""

from fusioninfer.localcluster.fakes import main

main()
