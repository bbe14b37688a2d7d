from shop.serve import run

run("services.gateway.app:app")
