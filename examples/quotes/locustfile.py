"""The quotes example's traffic: reads of single quotes and lists, and scored quotes."""

import random

from locust import FastHttpUser, task


class Reader(FastHttpUser):
    @task(5)
    def one_quote(self) -> None:
        self.client.get(f"/quotes/{random.randrange(1000)}", name="/quotes/{id}")

    @task(1)
    def a_list(self) -> None:
        self.client.get("/quotes?limit=20", name="/quotes")

    @task(3)
    def scored(self) -> None:
        self.client.post("/score", json={"id": random.randrange(1000)}, name="/score")
