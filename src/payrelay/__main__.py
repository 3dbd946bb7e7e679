from payrelay.entrypoints.cli import main

main()
