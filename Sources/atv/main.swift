print("atv")
