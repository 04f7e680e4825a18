from vidqa.cli.app import app

app(prog_name="vidqa")
