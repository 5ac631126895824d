FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-cache-dir .
ENV LEDGER_VAR_DIR=/var/lib/ledger
EXPOSE 8000
CMD ["ledger", "serve", "--host", "0.0.0.0", "--port", "8000"]
