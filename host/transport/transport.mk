# transport: HTTP through libcurl (keep-alive handles, streaming, multi).
TRANSPORT_OBJS := $(patsubst host/%.c,$(OBJ)/%.o,$(wildcard host/transport/*.c))
