from aiarch.cli import main

main()
