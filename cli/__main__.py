from mimekit_cli.main import main

main()
