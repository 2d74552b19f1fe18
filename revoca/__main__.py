from revoca.cli import main

main()
