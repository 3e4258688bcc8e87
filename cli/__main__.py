from mimekit_cli.main import run

run()
