from mtsent.cli import app

app(prog_name="mtsent")
