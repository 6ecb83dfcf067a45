-- A small shop schema for the demo: keys, a foreign key, a view, a table without a
-- primary key, and the column types users care about most.
CREATE DATABASE IF NOT EXISTS shop;
USE shop;
CREATE TABLE IF NOT EXISTS customers (
  id         BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  email      VARCHAR(255) NOT NULL,
  name       VARCHAR(100) NOT NULL,
  created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  UNIQUE KEY uk_email (email)
);
CREATE TABLE IF NOT EXISTS orders (
  id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  customer_id BIGINT UNSIGNED NOT NULL,
  status      ENUM('new','paid','shipped','cancelled') NOT NULL DEFAULT 'new',
  total       DECIMAL(12,2) NOT NULL,
  attributes  JSON,
  placed_at   TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  KEY k_customer (customer_id),
  CONSTRAINT fk_orders_customer FOREIGN KEY (customer_id) REFERENCES customers (id)
);
CREATE TABLE IF NOT EXISTS audit_log (
  at      DATETIME NOT NULL,
  message TEXT
);
CREATE OR REPLACE VIEW paid_orders AS
  SELECT o.id, c.email, o.total FROM orders o JOIN customers c ON c.id = o.customer_id
  WHERE o.status = 'paid';
