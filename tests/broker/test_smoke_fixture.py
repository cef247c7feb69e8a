async def test_fixture_round_trip(ms):
    r = await ms.send("someone", "hi")
    mb = await ms.open("someone")
    m = await mb.receive(timeout=5)
    assert m.id == r.id and m.text() == "hi"
    await m.ack()
