from slicewise.cli import main

main()
