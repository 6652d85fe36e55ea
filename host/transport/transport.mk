# transport: HTTP through libcurl (keep-alive handles, streaming, multi).
TRANSPORT_OBJS := $(OBJ)/transport/http.o
