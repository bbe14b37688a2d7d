from shop.serve import run

run("services.monolith.app:app")
