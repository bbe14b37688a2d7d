from shop.serve import run

run("services.inference.app:app")
